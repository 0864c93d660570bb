import pytest

from hmaf import cli, evaluate, prepare


def _parser():
    p = cli.ArgumentParser(prog="x")
    p.add_argument("--label_map", default="")
    p.add_argument("--no_progress", action="store_true")
    p.add_argument("--out")
    return p


def test_underscore_spelling_parses_without_warning(recwarn):
    args = _parser().parse_args(["--label_map", "a=b", "--no_progress"])
    assert (args.label_map, args.no_progress) == ("a=b", True)
    assert not [w for w in recwarn if issubclass(w.category, FutureWarning)]


def test_old_hyphenated_spelling_is_mapped_with_a_deprecation_warning():
    with pytest.warns(FutureWarning, match="--label-map is deprecated, spell it --label_map"):
        args = _parser().parse_args(["--label-map=a=b", "--no-progress", "--out=--label-map"])
    assert (args.label_map, args.no_progress, args.out) == ("a=b", True, "--label-map")


def test_unknown_hyphenated_options_still_fail_and_hyphenated_definitions_are_refused(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["--labelmap-x", "1"])
    with pytest.raises(ValueError, match="--no_prepare"):
        cli.ArgumentParser().add_argument("--no-prepare")


def test_project_commands_spell_flags_with_underscores():
    names = [o for a in prepare._parser()._actions for o in a.option_strings if o.startswith("--")]
    assert "--l_max" in names and all("-" not in o[2:] for o in names)
    with pytest.warns(FutureWarning):
        with pytest.raises(SystemExit) as e:  # --label-map is accepted, --workdir then missing
            evaluate.main(["--data", "d", "--label-map", "x=y"])
    assert e.value.code == 2
