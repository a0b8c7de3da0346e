from xpm_train.tasks.report import evaluation_section, markdown_table, training_section


def test_markdown_table_formats_floats():
    assert markdown_table(["a", "b"], [["x", 0.123456], ["y", 2]]) == (
        "| a | b |\n| --- | --- |\n| x | 0.1235 |\n| y | 2 |"
    )


def test_sections_put_the_key_metrics_first():
    results = {
        "pretrain": {
            "step": 10,
            "datasets": {"facts": {"perplexity": 4.4, "loss": 1.5, "accuracy": 0.25}},
        },
        "dpo": {
            "step": 5,
            "datasets": {"facts": {"perplexity": 5.0, "loss": 1.6, "accuracy": 0.5}},
        },
    }
    text = "\n".join(evaluation_section(results))
    assert "Held-out `facts`:" in text
    assert "| stage | step | loss | accuracy | perplexity |" in text
    assert "| dpo | 5 | 1.6 | 0.5 | 5 |" in text
    curves = {
        "dpo": [
            {"kind": "train", "step": 5, "loss": 0.6, "rewards/accuracies": 0.9, "lr": 0.001},
            {"kind": "eval", "step": 5, "eval/loss": 0.65, "eval/rewards/accuracies": 0.8},
        ]
    }
    text = "\n".join(training_section(curves, {"dpo": ("rewards/accuracies",)}))
    assert "`dpo`:" in text
    assert "|  | loss | rewards/accuracies |" in text
    assert "| training | 0.6 | 0.9 |" in text and "| held-out | 0.65 | 0.8 |" in text
    assert "<details><summary>every other metric</summary>" in text
    assert "| lr |\n| --- |\n| 0.001 |" in text
