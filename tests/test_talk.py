"""A talk's slides from a link (presets, lessons, configurations) and a configuration in words."""

from types import SimpleNamespace

from gradviz.config import RunConfig
from gradviz.presets import PRESETS
from gradviz.talk import MAX_SLIDES, parse_talk, talk_link
from gradviz.words import network_in_words


def test_a_talk_mixes_presets_and_configurations_in_order():
    slides, notes = parse_talk("exploding-linear, depth=3;activation=relu;learning_rate=0.1")
    assert notes == []
    assert slides[0].config == PRESETS["exploding-linear"].config
    assert slides[1].config == RunConfig(depth=3, activation="relu", learning_rate=0.1)


def test_a_lesson_in_a_talk_gives_one_slide_per_step():
    steps = [SimpleNamespace(config=RunConfig(depth=d), title=f"step {d}") for d in (2, 4)]
    slides, notes = parse_talk("lesson:mine,seed-clipnorm", {"mine": SimpleNamespace(steps=steps)})
    assert [s.title for s in slides[:2]] == ["step 2", "step 4"] and slides[2].config == PRESETS["seed-clipnorm"].config
    assert notes == [] and talk_link(slides) == "lesson:mine,seed-clipnorm"


def test_a_slide_given_twice_stays_twice_in_the_link():
    twice = "seed-clipnorm,exploding-linear,seed-clipnorm"
    for link, kept in ((twice.replace(",seed", ",nope,seed"), twice), ("seed-clipnorm,seed-clipnorm", None)):
        kept = kept or link
        slides, _ = parse_talk(link)
        assert talk_link(slides) == kept
        assert [s.config for s in parse_talk(talk_link(slides))[0]] == [s.config for s in slides]


def test_unknown_items_are_left_out_with_a_note_and_bad_values_are_named():
    slides, notes = parse_talk("nope," + "x" * 100 + ",lesson:missing,depth=999")
    assert len(slides) == 1 and slides[0].config.depth == RunConfig().depth
    assert len(notes) == 4 and "'nope'" in notes[0] and "..." in notes[1] and "lesson" in notes[2]
    assert "depth" in notes[3] and "slide 1" in notes[3]


def test_a_talk_is_cut_at_its_maximum_length():
    slides, notes = parse_talk(",".join(["seed-clipnorm"] * (MAX_SLIDES + 5)))
    assert len(slides) == MAX_SLIDES and len(notes) == 1


def test_a_network_in_words_names_depth_activation_init_and_step():
    assert network_in_words(PRESETS["exploding-linear"].config) == \
        "20 linear layers of 256, random_normal σ 0.08, SGD at 0.01"
    assert network_in_words(PRESETS["exploding-linear-clipped"].config).endswith("SGD at 0.01, clipnorm 1")
    assert network_in_words(PRESETS["vanishing-fixed-batchnorm"].config).startswith(
        "10 sigmoid layers of 256 with batch norm,")
    assert network_in_words(PRESETS["rnn-exploding-relu"].config).startswith(
        "SimpleRNN(relu) of 64 reading 28 steps of 28 pixels, recurrent random_normal σ 0.3")
    assert network_in_words(RunConfig(depth=1, initializer="orthogonal", init_gain=2.0)).startswith(
        "1 relu layer of 128, orthogonal gain 2,")
