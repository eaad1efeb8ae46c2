"""Fallback word list (common English words), used when no system list exists.

Kept in the package so key generation works on any machine; Debian's
``wamerican`` list (``/usr/share/dict/words``) is preferred when installed.
"""

FALLBACK_WORDS = """
able about above accept across act action active actor add address admire adult advice afraid
after again against age agent agree ahead air alarm album alert alive allow almost alone along
already also alter always amount anchor ancient anger angle animal ankle answer apple april
arch area argue arm army around arrive arrow art artist ask asleep attack attend aunt author
autumn avoid awake away axis baby back bacon badge bake balance ball bamboo banana band bank
barn barrel base basket bath battle beach beam bean bear beard beast beat beauty become bed
bee beef before begin behind believe bell belt bench berry best better between bicycle big
bike bird birth biscuit bitter black blade blame blanket blast blind block blood bloom blossom
blue board boat body boil bone bonus book boot border borrow boss bottle bottom bounce bowl
box boy brain branch brass brave bread break breeze brick bridge brief bright bring broken
bronze brother brown brush bubble bucket budget build bullet bundle burden burst bush business
butter button buyer cabin cable cactus cake call calm camera camp canal candle candy canvas
canyon capital captain car carbon card cargo carpet carry cart case castle catalog catch cattle
cause cave ceiling celery cement census century cereal certain chair chalk champion change
chapter charge chase cheap check cheese cherry chest chicken chief child chimney choice
chorus church cinema circle citizen city civil claim clap class clay clean clerk clever
cliff climb clinic clock close cloth cloud clown club coach coast coconut coffee coin cold
collect color column comet comfort common company concert copper coral corn corner cotton
couch country couple course cousin cover coyote crack cradle craft crane crater crazy cream
credit creek crew cricket crisp critic crop cross crowd crown cruise crystal cube culture cup
cupboard curious current curtain curve cushion custom cycle daily damp dance danger daring
dawn day deal debate decade december decide deer defense degree delay deliver demand denial
dentist depth desert design desk detail device diamond diary diesel dinner direct dirt
discover dish display distance divide doctor dolphin domain donkey door double dove draft
dragon drama drawer dream dress drift drill drink drive drum duck dune during dust eagle early
earth easily east echo edge effort eight elbow elder electric elephant elevator emerald
empire empty enemy energy engine enjoy enough enter entire entry envelope equal erosion
escape essay estate evening event evidence exact example exchange exercise exhibit exile
exit expand expert explain express extra fabric face factory faint faith fall family famous
fancy farm fashion father fault feather feature february fence festival fever fiber field
figure film final finger finish fire first fiscal fish flag flame flash flavor fleet flight
float flock floor flower fluid foam focus fog folder follow food foot forest fork fortune
forum fossil fountain fox frame fresh friend frog frost fruit fuel funny furnace gadget
galaxy gallery game garage garden garlic gas gate gather gauge gentle ghost giant gift ginger
giraffe girl glacier glad glass globe glove glow glue goat gold good gorilla gospel grain
grape grass gravity great green grid grocery group grow guard guess guide guitar habit
hammer hamster hand harbor harvest hat hawk head health heart heavy hedgehog height hello
helmet hero hidden high hill hint history hobby hockey holiday hollow home honey hood hope
horizon horn horse hospital hotel hour house hover humble humor hundred hungry hunt hurdle
husband hybrid ice icon idea image impact income index infant inform inner input insect
inside island issue ivory jacket jaguar jar jazz jeans jelly jewel job journey judge juice
jungle junior justice kettle key kid kidney kind king kitchen kite kitten kiwi knee knife
label ladder lady lake lamp language laptop large later laugh laundry lava lawn layer leader
leaf learn leather lecture lemon length lens leopard letter level liberty library license
light limb limit lion liquid list little lizard lobster local lock logic long loop lottery
loud lounge lucky lumber lunar lunch machine magnet maid mail major mammal mango mansion
maple marble march margin marine market marriage mask master match material matrix meadow
medal melody member memory menu mercy mesh message metal method middle midnight milk mill
mind mineral minute mirror mixture mobile model modern moment monitor monkey month moon
morning mosquito mother motion motor mountain mouse movie muffin mule museum mushroom music
napkin narrow nation nature neck needle nephew nest network never noble noise noodle normal
north nose notable nothing novel number nurse oak object ocean october office olive onion
open opera orange orbit orchard order organ orient original orphan ostrich outdoor oven owner
oxygen oyster paddle page palace panda panel panther paper parade parent park parrot party
pass patch path patrol pause peach peanut pear pelican pen pencil people pepper perfect
piano picnic picture piece pig pigeon pillow pilot pink pioneer pipe pistol pitch pizza
planet plastic plate play plaza pledge pluck plug plunge poem poet point polar pole pony
popular portion position potato pottery powder power practice praise present pretty price
pride primary print prison private prize problem process produce profit program project
proof property prosper proud public pudding pulse pumpkin pupil puppy purple purpose puzzle
pyramid quality quantum quarter question quick quiet quilt quote rabbit raccoon race rack
radar radio rail rain rainbow ranch random range rapid rare raven razor ready real reason
rebel recipe record recycle region regular relax remind repair report rescue resource
response rhythm ribbon rice rich ride ridge rifle right ring ripple risk ritual rival river
road robot rocket romance roof rookie room rose rotate rough round route royal rubber rude
rural saddle sail salad salmon salon salt sample sand satoshi sauce sausage scale scene
scheme school science scissors scout screen script season seat second secret section seed
segment senior sense sentence series service session settle seven shadow shallow share
shed shell sheriff shield shift shine ship shirt shoe shop short shoulder shrimp sibling
siege signal silent silk silver simple siren sister situate skate sketch skill skin skirt
sky slab sleep slender slice slogan slot slow small smart smile smoke snack snake snow soap
soccer social sock soda soft solar soldier solid solution song soon sound soup source south
space spatial special speed sphere spice spider spirit splash sponsor spoon sport spot spray
spread spring square squirrel stable stadium staff stage stairs stamp stand start station
steak steel stereo stick still stock stomach stone stool story stove strategy street strike
strong student stuff style subject subway sugar suit summer sun sunny sunset super supply
supreme surface surprise survey sustain swallow swamp swan sweet swift swim swing sword
symbol symptom syrup system table tackle tail talent tank tape target task taxi teach team
tenant tennis tent term test text theme theory thunder ticket tide tiger timber time tiny
tissue title toast tobacco today toddler token tomato tomorrow tone tongue tonight tool tooth
topic torch tornado tortoise tower town toy track trade traffic train transfer trap travel
tray treat tree trend trial tribe trick trophy truck trumpet trust truth tunnel turkey turtle
twelve twenty twin type umbrella uncle under unique unit universe upper urban usage useful
vacuum valley valve van vapor various vast velvet vendor venture venue verb version vessel
veteran video view village vintage violin virtual visit visual vital vivid vocal voice
volcano volume voyage wagon wait walnut wander warm warrior wash wasp water wave wealth
weapon weather wedding weekend welcome west whale wheat wheel whisper width wild window wine
wing winter wire wisdom witness wolf woman wonder wood wool word world worth wrist writer
yard year yellow young zebra zero zone
""".split()
