"""Real paragraphs for the clean tests, excerpted from mozilla/readability test pages
(test/test-pages/{medium-1,bbc-1,heise,lemonde-1}/expected.html @ ab4027a, Apache-2.0 repo,
text (c) its publishers; copied into this file, not read from anywhere) and Multi30k captions (sft_ray/demo/data)."""

MEDIUM = [
    "We pushed out the first version of the Open Journalism site in January. Our goal is for the site to be a place to "
    "teach students what they should know about journalism on the web. It should be fun too.",
    "Topics like mapping, security, command line tools, and open source are all concepts that should be made more "
    "accessible, and should be easily understood at a basic level by all journalists. We’re focusing on students because "
    "we know student journalism well, and we believe that teaching maturing journalists about the web will provide them "
    "with an important lens to view the world with. This is how we got to where we are now.",
    "In late 2011 I sat in the design room of our university’s student newsroom with some of the other editors: Kate "
    "Hudson, Brent Rose, and Nicholas Maronese. I was working as the photo editor then—something I loved doing. I was very "
    "happy travelling and photographing people while listening to their stories.",
    "Photography was my lucky way of experiencing the many types of people my generation seemed to avoid, as well as many "
    "the public spends too much time discussing. One of my habits as a photographer was scouring sites like Flickr to see "
    "how others could frame the world in ways I hadn’t previously considered.",
]
GOOD_PAGE = "\n\n".join(MEDIUM)

BBC = [
    "Hours after the interview, a gunman opened fire at a cinema in the US state of Louisiana, killing two people and "
    "injuring several others before shooting himself.",
    "But with just 18 months left in power, he said gun control was the area where he has been \"most frustrated and most "
    "stymied\" since coming to power in 2009.",
    "\"If you look at the number of Americans killed since 9/11 by terrorism, it's less than 100. If you look at the number "
    "that have been killed by gun violence, it's in the tens of thousands,\" Mr Obama said.",
    "After nine African-American churchgoers were killed in South Carolina in June, he admitted \"politics in this town\" "
    "meant there were few options available.",
]

HEISE = [
    "AgileBits hat Version 5.3 seines bekannten Passwortmanagers 1Password für OS X freigegeben. Mit dem Update wird eine "
    "praktische Funktion nachgereicht, die die iOS-Version der Anwendung bereits seit längerem beherrscht: Das direkte "
    "Erstellen von Einmal-Passwörtern. Unterstützt wird dabei der TOTP-Standard (Time-Based One-Time Passwords), den unter "
    "anderem Firmen wie Evernote, Dropbox oder Google einsetzen, um ihre Zugänge besser abzusichern. Neben Account und "
    "regulärem Passwort wird dabei dann ein Zusatzcode verlangt, der nur kurze Zeit gilt.",
    "Update 5.3 des Passwortmanagers liefert auch noch weitere Verbesserungen. So gibt es die Möglichkeit, FaceTime-Audio- "
    "oder Skype-Anrufe aus 1Password zu starten, die Zahl der Zusatzfelder in der Datenbank wurde erweitert und der Umgang "
    "mit unterschiedlichen Zeitzonen klappt besser. Die Engine zur Passworteingabe im Browser soll beschleunigt worden sein.",
]

LEMONDE = (
    "Les députés ont, sans surprise, adopté à une large majorité (438 contre 86 et 42 abstentions) le projet de loi sur le "
    "renseignement défendu par le gouvernement lors d’un vote solennel, mardi 5 mai. Il sera désormais examiné par le "
    "Sénat, puis le Conseil constitutionnel, prochainement saisi par 75 députés."
)

CAPTIONS_EN = [
    "Two young, White males are outside near many bushes.",
    "Several men in hard hats are operating a giant pulley system.",
    "Two men are at the stove preparing food.",
    "Boys dancing on poles in the middle of the night.",
    "A woman with a large purse is walking by a gate.",
    "A little girl climbing into a wooden playhouse.",
]
CAPTIONS_DE = [
    "Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche.",
    "Mehrere Männer mit Schutzhelmen bedienen ein Antriebsradsystem.",
]
