"""The open-loop run's pure helpers: the trace's times, the rescaling to a target load, the
bursts, the stream parsing and the figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.open_loop import (
    Arrival,
    OpenRun,
    Streamed,
    TimedRow,
    open_loop_set,
    peak_load,
    read_chunk,
    read_timed_trace,
    time_factor,
)
from bench.workload import Request, Scale

SCALE = Scale(prompt=1.0, output=1.0, min_prompt=1, min_output=1)


class Prompts:
    """Stands in for the tokenizer-backed PromptMaker: prompt text is irrelevant here."""

    def prompt(self, tokens: int, salt: int) -> str:
        return f"{tokens}:{salt}"


def test_the_trace_times_count_from_its_first_request(tmp_path: Path) -> None:
    csv = tmp_path / "trace.csv"
    csv.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109\n"
    )
    first, second = read_timed_trace(csv)
    assert first == TimedRow(0.0, 374, 44)
    assert second.at_s == pytest.approx(4.314579) and (second.prompt, second.output) == (396, 109)


def test_arrivals_are_rescaled_to_the_target_mean_load() -> None:
    rows = [TimedRow(10.0, 5, 100), TimedRow(12.0, 5, 20), TimedRow(20.0, 5, 80)]
    # 200 tokens over 10 s offered = 20 tok/s; 0.5 of 10 tok/s wanted: twice as slow.
    assert time_factor(rows, SCALE, capacity_tok_s=10.0, load=0.5) == pytest.approx(4.0)
    arrivals, factor = open_loop_set(
        Prompts(), rows, SCALE, capacity_tok_s=10.0, load=0.5, short_output=50
    )
    assert factor == pytest.approx(4.0)
    assert [a.at_s for a in arrivals] == pytest.approx([0.0, 8.0, 40.0])
    assert [a.request.kind for a in arrivals] == ["long", "short", "long"]
    assert [a.request.max_tokens for a in arrivals] == [100, 20, 80]
    offered = sum(a.request.max_tokens for a in arrivals) / arrivals[-1].at_s
    assert offered == pytest.approx(0.5 * 10.0)
    with pytest.raises(ValueError, match="two distinct"):
        time_factor(rows[:1], SCALE, 10.0, 0.5)


def test_the_peak_load_is_the_busiest_window_over_capacity() -> None:
    arrivals = [Arrival(t, Request("p", 10)) for t in (0.0, 1.0, 1.5, 2.0, 9.0)]
    assert peak_load(arrivals, capacity_tok_s=10.0, window_s=1.0) == pytest.approx(3.0)
    assert peak_load(arrivals, capacity_tok_s=10.0, window_s=10.0) == pytest.approx(0.5)


def test_stream_lines_are_read_as_chunks() -> None:
    assert read_chunk('data: {"choices": [{"text": "hi"}]}') == {"choices": [{"text": "hi"}]}
    assert read_chunk("data: [DONE]") is None
    assert read_chunk(": ping") is None and read_chunk("") is None


def test_figures_split_short_and_long_and_count_tokens_over_the_span() -> None:
    done = [Streamed("short", 0.1 * i, 0.5 * i, 10) for i in range(1, 101)]
    done += [Streamed("long", 2.0, 9.0, 100)]
    figures = OpenRun(done, elapsed_s=10.0).figures()
    assert figures["tok_s"] == 110.0
    assert figures["short_ttft_p50_ms"] == 5000.0 and figures["short_ttft_p99_ms"] == 10000.0
    assert figures["short_p99_ms"] == 50000.0 and figures["long_p99_ms"] == 9000.0
