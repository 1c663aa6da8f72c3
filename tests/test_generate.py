"""`implicit-if generate`: instructions in, AlpacaEval model_outputs out."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from implicit_if.cli import app
from implicit_if.generation import output_records, read_instructions_jsonl

INSTRUCTIONS = ["Name three primary colours.", "Write a haiku about rain.", "What is 12 times 7?"]


def write_instructions(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_instruction_files_are_checked_line_by_line(tmp_path):
    good = write_instructions(
        tmp_path / "good.jsonl",
        [json.dumps({"instruction": t, "id": f"q{i}"}) for i, t in enumerate(INSTRUCTIONS)] + [""],
    )
    assert [r["instruction"] for r in read_instructions_jsonl(good)] == INSTRUCTIONS
    bad = write_instructions(tmp_path / "bad.jsonl", [json.dumps({"instruction": "ok"}), "{not json"])
    with pytest.raises(ValueError, match="bad.jsonl:2: not valid JSON"):
        read_instructions_jsonl(bad)
    missing = write_instructions(tmp_path / "missing.jsonl", [json.dumps({"prompt": "x"})])
    with pytest.raises(ValueError, match='needs a non-empty "instruction"'):
        read_instructions_jsonl(missing)


def test_output_records_follow_alpaca_eval():
    records = output_records(
        [{"instruction": "a", "id": "x1", "dataset": "koala"}, {"instruction": "b"}],
        ["out a", "out b"],
        generator="m",
        dataset="mine",
    )
    assert records == [
        {"instruction": "a", "output": "out a", "generator": "m", "dataset": "koala", "instruction_id": "x1"},
        {"instruction": "b", "output": "out b", "generator": "m", "dataset": "mine", "instruction_id": "1"},
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "gsm8k"], "unknown --dataset"),
        (["--instructions", "missing.jsonl"], "does not exist"),
        (["--format", "chatml"], "unknown chat format"),
        (["--backend", "tgi"], "unknown --backend"),
        (["--backend", "openai", "--rules", "eos"], "use --backend hf or vllm"),
        (["--rules", "eos,bogus"], "--rules 'eos,bogus'"),
        (["--rules", "eos", "--rule-option", "eos_scal=3"], "unknown rule option(s) eos_scal"),
        (["--rules", "eos", "--rule-option", "count_instruction_tokens"], "write KEY=VALUE"),
        (["--rule-option", "count_instruction_tokens=true"], "needs rules to apply to"),
    ],
)
def test_cli_errors_are_clear_and_write_nothing(tmp_path, monkeypatch, offline_env, args, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMPLICIT_IF_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(app, ["generate", "--model", "smollm2-135m-instruct", "--output", "out.json", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (tmp_path / "out.json").exists()


def _transformers_greedy(model_dir, prompts, max_new_tokens):
    """Greedy continuations straight from transformers, one prompt at a time (no batching, no backend)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    texts = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(
                **ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.eos_token_id
            )
        texts.append(tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip())
    return texts


@pytest.mark.slow
def test_generate_writes_model_outputs_equal_to_plain_greedy_decoding(tmp_path, smollm2_dir, offline_env, monkeypatch):
    from implicit_if.formats import format_prompt

    monkeypatch.setenv("IMPLICIT_IF_CACHE", str(tmp_path / "cache"))
    source = write_instructions(tmp_path / "instructions.jsonl", [json.dumps({"instruction": t}) for t in INSTRUCTIONS])
    out = tmp_path / "outputs.json"
    base = [
        "generate",
        "--model",
        smollm2_dir,
        "--instructions",
        str(source),
        "--max-new-tokens",
        "12",
        "--dtype",
        "float32",
        "--batch-size",
        "3",
    ]
    result = CliRunner().invoke(app, [*base, "--output", str(out), "--generator", "smol"])
    assert result.exit_code == 0, result.output
    records = json.loads(out.read_text(encoding="utf-8"))
    assert [set(r) for r in records] == [{"instruction", "output", "generator", "dataset", "instruction_id"}] * 3
    assert [r["instruction"] for r in records] == INSTRUCTIONS
    assert {r["generator"] for r in records} == {"smol"} and {r["dataset"] for r in records} == {"instructions"}
    expected = _transformers_greedy(smollm2_dir, [format_prompt(t, "tulu") for t in INSTRUCTIONS], 12)
    assert [r["output"] for r in records] == expected
    # the rule-based adapter changes what is generated, and says so in the generator name
    ruled = tmp_path / "ruled.json"
    result = CliRunner().invoke(app, [*base, "--output", str(ruled), "--rules", "eos,uniform,diversity"])
    assert result.exit_code == 0, result.output
    ruled_records = json.loads(ruled.read_text(encoding="utf-8"))
    assert ruled_records[0]["generator"].endswith("+rules:eos,uniform,diversity")
    assert [r["output"] for r in ruled_records] != expected
    # a constant overridden from the command line is applied and named
    study = tmp_path / "study.json"
    result = CliRunner().invoke(
        app, [*base, "--output", str(study), "--rules", "diversity", "--rule-option", "count_instruction_tokens=true"]
    )
    assert result.exit_code == 0, result.output
    study_records = json.loads(study.read_text(encoding="utf-8"))
    assert study_records[0]["generator"].endswith("+rules:diversity(count_instruction_tokens=True)")
