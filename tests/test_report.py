from xpm_train.tasks.report import evaluation_section, markdown_table, training_section


def test_markdown_table_formats_floats():
    assert markdown_table(["a", "b"], [["x", 0.123456], ["y", 2]]) == (
        "| a | b |\n| --- | --- |\n| x | 0.1235 |\n| y | 2 |"
    )


def test_sections_have_a_row_per_stage_and_a_column_per_metric():
    results = {
        "pretrain": {"step": 10, "datasets": {"facts": {"loss": 1.5, "accuracy": 0.25}}},
        "dpo": {"step": 5, "datasets": {"facts": {"loss": 1.6, "accuracy": 0.5}}},
    }
    text = "\n".join(evaluation_section(results))
    assert "Held-out `facts`:" in text
    assert "| stage | step | accuracy | loss |" in text
    assert "| dpo | 5 | 0.5 | 1.6 |" in text
    curves = {
        "dpo": [
            {"kind": "train", "step": 5, "loss": 0.6, "rewards/accuracies": 0.9},
            {"kind": "eval", "step": 5, "eval/loss": 0.65},
        ]
    }
    text = "\n".join(training_section(curves))
    assert "`dpo`:" in text
    assert "| eval/loss | loss | rewards/accuracies |" in text
    assert "| 0.65 | 0.6 | 0.9 |" in text
