"""``synthaug predict`` on the command line: a missing run is an error that names what there is."""

from synthaug.cli.main import main


def test_predict_without_that_run_names_the_arms_there_are(tmp_path, capsys):
    (tmp_path / "work" / "runs" / "default" / "seed0").mkdir(parents=True)
    (tmp_path / "img.nii.gz").write_bytes(b"")
    code = main(["predict", "--work", str(tmp_path / "work"), "--arm", "context", "--seed", "0",
                 "-i", str(tmp_path / "img.nii.gz"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "synthaug predict: error:" in err and "no finished run of arm 'context' seed 0" in err
    assert "Arms there: ['default']" in err and "Run synthaug benchmark downstream first" in err
    assert not (tmp_path / "out").exists()
