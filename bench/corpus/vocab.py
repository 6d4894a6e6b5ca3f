"""Vocabulary shared by the benchmark corpus and topic generators (gen_corpus.py, gen_topics.py).

Per language (es, en, pt) a ranked word list: hand-written function words first, then common
content words (politics, economy, health, education, climate, sport, technology, daily life,
sentiment), then a synthetic long tail made from the language's own syllables and endings, so
the text looks like the language to a character n-gram model. Posts draw words from these lists
with Zipf weights (rank r has weight 1 / r^ZIPF_S). Topic terms come from the same lists, so
topics match posts at realistic, reproducible rates.

Canary tokens (CANARY_*) never occur by chance: the corpus plants them at known positions so a
benchmark can check exact per-topic counts. Standard library only; deterministic."""

import functools
from random import Random

ZIPF_S = 1.0
TAIL_WORDS = 40000  # synthetic words per language after the hand-written ones

FUNCTION = {
    "es": """de la que el en y a los se del las un por con no una su para es al lo como más
        pero sus le ya o este sí porque esta entre cuando muy sin sobre también me hasta hay
        donde quien desde todo nos durante todos uno les ni contra otros ese eso ante ellos e
        esto mí antes algunos qué unos yo otro otras otra él tanto esa estos mucho quienes nada
        muchos cual poco ella estar estas algunas algo nosotros mi mis tú te ti tu tus ellas
        está están era son fue han ha hoy ahora así aquí va vamos hace hacer tiene tienen""",
    "en": """the of and to a in is it you that he was for on are as with his they i at be this
        have from or one had by but not what all were we when your can said there use an each
        which she do how their if will up other about out many then them these so some her
        would make like him into time has look two more go see no way could people my than
        first been who its now find down day did get come made may part just over new after
        also our very because any most us today here why really still going""",
    "pt": """de a o que e do da em um para é com não uma os no se na por mais as dos como mas
        foi ao ele das tem à seu sua ou ser quando muito há nos já está eu também só pelo pela
        até isso ela entre era depois sem mesmo aos ter seus quem nas me esse eles estão você
        tinha foram essa num nem suas meu às minha têm numa pelos elas havia seja qual será
        nós tenho lhe deles essas esses pelas este fosse dele tu te vocês vos lhes meus minhas
        teu tua teus tuas nosso nossa nossos nossas hoje agora aqui vai vamos fazer""",
}

CONTENT = {
    "es": """gobierno presidente congreso elecciones votación candidato partido ministro ley
        reforma presupuesto país ciudad región municipio alcalde justicia fiscal corrupción
        denuncia tribunal policía seguridad violencia protesta marcha huelga trabajo empleo
        salario economía precios inflación dólar mercado empresa impuestos pobreza desigualdad
        salud hospital médicos vacuna enfermedad anemia desnutrición agua lluvia sequía clima
        calentamiento bosques amazonía minería petróleo energía educación escuela colegio
        universidad estudiantes profesores niños niñas jóvenes mujeres familia comunidad
        campesinos pueblos indígenas derechos igualdad género cultura música fútbol partido
        selección gol estadio tecnología internet digital redes teléfono datos inteligencia
        artificial transporte tráfico carretera tren aeropuerto vivienda barrio mercado comida
        ceviche papa maíz café cosecha agricultura pesca turismo viaje playa montaña volcán
        terremoto emergencia rescate bomberos noticia informe encuesta estudio datos cifras
        semana mes año mañana tarde noche domingo lunes viernes verano invierno historia
        futuro problema solución propuesta debate entrevista conferencia anuncio medida
        bueno buena excelente increíble feliz alegría gracias orgullo esperanza genial
        hermoso mejor éxito malo mala terrible horrible triste tristeza vergüenza miedo
        rabia indignación peor fracaso crisis caos mentira odio amor apoyo""",
    "en": """government president congress election vote candidate party minister law reform
        budget country city region mayor justice prosecutor corruption complaint court police
        security violence protest march strike work jobs wages economy prices inflation dollar
        market company taxes poverty inequality health hospital doctors vaccine disease water
        rain drought climate warming forests amazon mining oil energy education school college
        university students teachers children youth women family community farmers rights
        equality culture music football soccer match goal stadium technology internet digital
        network phone data intelligence artificial transport traffic road train airport housing
        neighborhood food coffee harvest agriculture fishing tourism travel beach mountain
        earthquake emergency rescue firefighters news report survey study numbers week month
        year morning afternoon night sunday monday friday summer winter history future problem
        solution proposal debate interview conference announcement measure good great excellent
        amazing happy joy thanks proud hope wonderful beautiful better success bad terrible
        horrible awful sad shame fear anger outrage worse failure crisis chaos lie hate love
        support""",
    "pt": """governo presidente congresso eleições votação candidato partido ministro lei reforma
        orçamento país cidade região município prefeito justiça promotor corrupção denúncia
        tribunal polícia segurança violência protesto marcha greve trabalho emprego salário
        economia preços inflação dólar mercado empresa impostos pobreza desigualdade saúde
        hospital médicos vacina doença água chuva seca clima aquecimento florestas amazônia
        mineração petróleo energia educação escola faculdade universidade estudantes
        professores crianças jovens mulheres família comunidade agricultores povos indígenas
        direitos igualdade cultura música futebol jogo seleção gol estádio tecnologia internet
        digital redes telefone dados inteligência artificial transporte trânsito estrada trem
        aeroporto moradia bairro comida café colheita agricultura pesca turismo viagem praia
        montanha terremoto emergência resgate bombeiros notícia relatório pesquisa estudo
        números semana mês ano manhã tarde noite domingo segunda sexta verão inverno história
        futuro problema solução proposta debate entrevista conferência anúncio medida bom boa
        ótimo excelente incrível feliz alegria obrigado orgulho esperança lindo melhor sucesso
        ruim péssimo terrível horrível triste tristeza vergonha medo raiva indignação pior
        fracasso crise caos mentira ódio amor apoio""",
}

# Syllables and endings of the synthetic long tail, per language.
ONSETS = {
    "es": "b c d f g l m n p r s t v ch ll ñ br tr pr gr cl fl qu j z".split(),
    "en": "b c d f g h l m n p r s t w st th sh ch br tr gr pl cl sp wh k".split(),
    "pt": "b c d f g l m n p r s t v ch lh nh br tr pr gr cl qu j z x".split(),
}
NUCLEI = {
    "es": "a e i o u a e o a e ia ue ie io".split(),
    "en": "a e i o u a e i o ea ee oo ou ai ay ow".split(),
    "pt": "a e i o u a e o a e ei ou ai".split(),
}
# An accented nucleus replaces a plain one in this share of the words (at most one per word).
ACCENTED = {"es": ("áéíóú", 0.12), "en": ("", 0.0), "pt": ("áéíóúâêôã", 0.15)}
ENDINGS = {
    "es": "ción ciones dad dades mente ado ada ados idas ero era ista ismo ando iendo ar er ir "
          "oso osa ía".split(),
    "en": "tion tions ness ment ing ed ly er ers able ity ful less ship al ous ive".split(),
    "pt": "ção ções dade mente ado ada ados idas eiro eira ista ismo ando endo ar er ir oso "
          "osa inho inha agem".split(),
}

LANGS = ("es", "en", "pt")

# Tokens planted by the corpus generator; the topics generator adds canary topics for them.
CANARY_PLAIN = "xqzalfa"      # keyword topic: every post that carries it
CANARY_NOT = "xqzbeta"        # query "xqzbeta NOT xqzveto"
CANARY_VETO = "xqzveto"
CANARY_NEAR_A = "xqzgamma"    # query "xqzgamma NEAR/3 xqzdelta"
CANARY_NEAR_B = "xqzdelta"
CANARY_PHRASE_A = "xqzeps"    # query "\"xqzeps xqzzeta\"" (exact phrase, this order)
CANARY_PHRASE_B = "xqzzeta"
MARKER = "xqzmarker"          # the latency probe's marker posts (never in the corpus)


def _tail(lang, rng, seen, n):
    out = []
    onsets, nuclei, endings = ONSETS[lang], NUCLEI[lang], ENDINGS[lang]
    accents, p_acc = ACCENTED[lang]
    plain = "aeiouaeioua"
    while len(out) < n:
        syl = rng.randint(1, 3)
        sy = [rng.choice(onsets) + rng.choice(nuclei) for _ in range(syl)]
        end = rng.choice(endings) if rng.random() < 0.55 else ""
        if accents and rng.random() < p_acc and not any(c in accents for c in end):
            k = rng.randrange(syl)
            v = [i for i, c in enumerate(sy[k]) if c in "aeiou"]
            if v:
                i = v[-1]
                acc = accents[plain.index(sy[k][i]) % len(accents)]
                sy[k] = sy[k][:i] + acc + sy[k][i + 1:]
        w = "".join(sy) + end
        if len(w) < 3 or w in seen or w.startswith("xqz"):
            continue
        seen.add(w)
        out.append(w)
    return out


def build(seed=20261116, tail=TAIL_WORDS):
    """{lang: [word, ...]} ranked most frequent first. Deterministic for (seed, tail)."""
    vocab = {}
    for lang in LANGS:
        rng = Random("%s-%d" % (lang, seed))
        words = []
        seen = set()
        for w in FUNCTION[lang].split() + CONTENT[lang].split():
            if w not in seen:
                seen.add(w)
                words.append(w)
        words += _tail(lang, rng, seen, tail)
        for w in words:
            if '"' in w or "\\" in w or any(ord(c) < 32 for c in w):
                raise ValueError("bad vocabulary word %r" % w)
        vocab[lang] = words
    return vocab


def n_function(lang):
    """How many top-ranked words of lang are function words (topics avoid them)."""
    return len(dict.fromkeys(FUNCTION[lang].split()))


def zipf_cum(n, s=ZIPF_S):
    """Cumulative Zipf weights for ranks 1..n (for random.choices(cum_weights=...))."""
    cum = []
    total = 0.0
    for r in range(1, n + 1):
        total += 1.0 / r ** s
        cum.append(total)
    return cum


FIRST = ("María José Rocío Ángel Lucía Martín Sofía Raúl Inés Jesús Ñusta Iñaki Begoña Andrés "
         "Verónica Óscar Mónica Julián Camila Sebastián Ana Luis Carmen Diego Valeria Hugo Elena "
         "Tomás João Conceição Gonçalo Márcia Antônio Luíza Thiago Letícia Emily James Sarah "
         "Michael Olivia Daniel Grace Peter Hannah Chloe Liam").split()
LAST = ("Quispe Mamani Huamán Flores Sánchez Rodríguez García Ramírez Chávez Torres Núñez Peña "
        "Cárdenas Gutiérrez Yupanqui Condori Castañeda Muñoz Ibáñez Gonçalves Araújo Conceição "
        "Magalhães Simões Brandão Assunção Smith Johnson Brown Miller Davis Wilson O'Neil").split()
MASTODON_HOSTS = ("mastodon.social", "mstdn.pe", "mas.to", "mastodon.lat", "social.br")
PLATFORMS = (("mastodon", 0.35), ("bluesky", 0.35), ("reddit", 0.2), ("rss", 0.1))


@functools.lru_cache(maxsize=None)
def _ascii(s):
    table = str.maketrans("áéíóúüñçãõâêôàÁÉÍÓÚÑÇÃÕÂÊÔ'", "aeiouuncaoaeoaAEIOUNCAOAEO_")
    return "".join(c for c in s.translate(table).lower() if c.isalnum() or c == "_")


def authors(n, seed=20261116):
    """n authors, rank 0 the most active and most followed. Each is a tuple
    (platform, handle, user, name, followers); user is the mention form without '@'."""
    rng = Random("authors-%d" % seed)
    plats = [p for p, _ in PLATFORMS]
    pw = [w for _, w in PLATFORMS]
    out = []
    for rank in range(n):
        platform = rng.choices(plats, pw)[0]
        first, last = rng.choice(FIRST), rng.choice(LAST)
        name = "%s %s" % (first, last)
        user = "%s_%s%d" % (_ascii(first), _ascii(last)[:6], rank)
        if platform == "mastodon":
            handle = "@%s@%s" % (user, rng.choice(MASTODON_HOSTS))
        elif platform == "bluesky":
            handle = "%s.bsky.social" % user
        elif platform == "reddit":
            handle = "u/%s" % user
        else:
            name = "Noticias %s" % last
            handle = "news%d.example" % rank
        followers = int(2000000 / (rank + 1) ** 0.9 * rng.uniform(0.3, 1.7)) + rng.randint(0, 50)
        out.append((platform, handle, user, name, followers))
    return out


def hashtags(vocab, n=6000, seed=20261116):
    """{lang: [tag, ...]} ranked: CamelCase tags made of one or two content words, some with a
    year, e.g. 'EleccionesPerú2026'. Without '#'."""
    out = {}
    for lang in LANGS:
        rng = Random("tags-%s-%d" % (lang, seed))
        words = vocab[lang][n_function(lang):]
        cum = zipf_cum(len(words), 0.8)
        tags = []
        seen = set()
        while len(tags) < n:
            k = 1 if rng.random() < 0.6 else 2
            parts = rng.choices(words, cum_weights=cum, k=k)
            tag = "".join(p[:1].upper() + p[1:] for p in parts)
            r = rng.random()
            if r < 0.15:
                tag += "2026"
            elif r < 0.25:
                tag += rng.choice(("Perú", "Brasil", "Lima", "UK", "Chile"))
            if tag.lower() not in seen:
                seen.add(tag.lower())
                tags.append(tag)
        out[lang] = tags
    return out


EMOJI = ("🇵🇪 🇧🇷 🇬🇧 🇺🇸 📢 🤔 😡 👏 📊 🔥 🙌 😔 💬 ✊ 🗳️ 📉 📈 ❤️ 😂 😭 🙏 👍🏽 👎 🎉 ⚽ 🌧️ ☀️ 🚨 "
         "💪🏾 🤦‍♀️ 👨‍👩‍👧 🏳️‍🌈 😍 😢 🙄 💔 ✅ ❌ 🧵 👀").split()
SITES = ("larepublica.pe", "elcomercio.pe", "rpp.pe", "g1.globo.com", "folha.uol.com.br",
         "bbc.co.uk", "nytimes.com", "elpais.com", "infobae.com", "ojo-publico.com",
         "theguardian.com", "youtu.be", "t.co", "estadao.com.br")


def _safe(s):
    if '"' in s or "\\" in s or "\t" in s or any(ord(c) < 32 for c in s):
        raise ValueError("unsafe vocabulary entry %r" % s)
    return s


def dump(path, n_authors, seed=20261116):
    """Writes everything the C corpus generator (gen_corpus.c) draws from, one entry a line:
    `<kind>\t<lang or ->\t<fields...>` with kind w (word, ranked), f (number of function words),
    t (hashtag, ranked), a (author: platform, handle, user, name, followers), e (emoji), s (site),
    c (canary token name and text). Returns the vocabulary."""
    vocab = build(seed)
    tags = hashtags(vocab, seed=seed)
    people = authors(n_authors, seed)
    lines = []
    for lang in LANGS:
        lines.append("f\t%s\t%d" % (lang, n_function(lang)))
        lines.extend("w\t%s\t%s" % (lang, _safe(w)) for w in vocab[lang])
        lines.extend("t\t%s\t%s" % (lang, _safe(t)) for t in tags[lang])
    for p in people:
        lines.append("a\t-\t%s\t%s\t%s\t%s\t%d" % (p[0], _safe(p[1]), _safe(p[2]), _safe(p[3]),
                                                     p[4]))
    lines.extend("e\t-\t%s" % e for e in EMOJI)
    lines.extend("s\t-\t%s" % s for s in SITES)
    for name, tok in (("plain", CANARY_PLAIN), ("not", CANARY_NOT), ("veto", CANARY_VETO),
                      ("near_a", CANARY_NEAR_A), ("near_b", CANARY_NEAR_B),
                      ("phrase_a", CANARY_PHRASE_A), ("phrase_b", CANARY_PHRASE_B)):
        lines.append("c\t-\t%s\t%s" % (name, tok))
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return vocab
