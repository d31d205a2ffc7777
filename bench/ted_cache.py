"""How often a served TED has already predicted the states it is asked about.

    .venv/bin/python -m bench.ted_cache [--model models/kefu.tar.gz] [--stories tests/stories]
        [--out bench/results/ted_cache.json]

`ServingTEDPolicy` remembers its predictions by the tracker's last `max_history` states
(custom_components/serving_ted_policy.py). The load benchmark replays a handful of scripted
conversations, so almost every state there repeats; this measures the rate on conversations
nobody replays: the test stories (tests/stories, written by the testers, never trained on),
played once each, one after the other, as new conversations reach a freshly started replica.
Every point where the dialogue model predicts an action goes through the trained model's own
policy ensemble (`MessageProcessor._predict_next_with_tracker`, RulePolicy, memoisation and
TED, as `rasa run` does); the figures count TED's predictions and its model runs.

Reported: predictions, model runs, the share served from the cache in the first and the
second half of the stories (the second half shows the rate once a replica has seen some
traffic), and the mean milliseconds of TED's prediction with and without the cache on the
same trackers. Writes bench/results/ted_cache.{json,md}.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bench.common import format_table, write_results

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "ted_cache.json"


def served_policy(agent: Any) -> Any:
    """The model's `ServingTEDPolicy` instance, as the graph runner holds it."""
    from custom_components.serving_ted_policy import ServingTEDPolicy

    nodes = agent.processor.graph_runner._instantiated_nodes.values()
    [policy] = [n._component for n in nodes if isinstance(n._component, ServingTEDPolicy)]
    return policy


def story_trackers(stories: Path, domain: Any) -> tuple[list, int]:
    """Each test story's trackers before each of its actions, story after story (in the order
    Rasa loads them), and the number of stories."""
    from rasa.core.training import load_data
    from rasa.shared.core.trackers import DialogueStateTracker

    trackers = load_data(str(stories), domain, augmentation_factor=0)
    prefixes = []
    for number, tracker in enumerate(trackers):
        # Rasa replays the events into one tracker and yields it at each action: a plain
        # tracker of its own each time (as a server has), not the training tracker's subclass.
        prefixes.extend(
            DialogueStateTracker.from_events(f"story-{number}", list(prior.events), domain.slots)
            for prior, _ in tracker.generate_all_prior_trackers()
        )
    return prefixes, len(trackers)


def measure(model: Path, stories: Path) -> dict[str, Any]:
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))
    policy = served_policy(agent)
    prefixes, conversations = story_trackers(stories, agent.domain)
    runs = []
    run_inference = policy.model.run_inference
    policy.model.run_inference = lambda data: runs.append(1) or run_inference(data)

    hits_by_half = [[0, 0], [0, 0]]
    for index, tracker in enumerate(prefixes):
        before = len(runs)
        agent.processor._predict_next_with_tracker(tracker)
        half = hits_by_half[index * 2 // len(prefixes)]
        half[0] += 1
        half[1] += len(runs) == before

    def mean_ms(cache_size: int) -> float:
        policy.config["prediction_cache_size"] = cache_size
        policy._prediction_cache.clear()
        for tracker in prefixes:  # fills the cache when it is on
            policy.predict_action_probabilities(tracker, agent.domain)
        started = time.perf_counter()
        for tracker in prefixes:
            policy.predict_action_probabilities(tracker, agent.domain)
        return 1000 * (time.perf_counter() - started) / len(prefixes)

    model_runs, cache_size = len(runs), policy.config["prediction_cache_size"]
    cached_states = len(policy._prediction_cache)
    without_ms, with_ms = mean_ms(0), mean_ms(cache_size)
    predictions = sum(h[0] for h in hits_by_half)
    return {
        "model": str(model),
        "stories": str(stories),
        "conversations": conversations,
        "predictions": predictions,
        "model_runs": model_runs,
        "from_cache": 1 - model_runs / predictions,
        "from_cache_first_half": hits_by_half[0][1] / hits_by_half[0][0],
        "from_cache_second_half": hits_by_half[1][1] / hits_by_half[1][0],
        "cached_states": cached_states,
        "ted_ms_without_cache": without_ms,
        "ted_ms_from_cache": with_ms,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "kefu.tar.gz")
    parser.add_argument("--stories", type=Path, default=ROOT / "tests" / "stories")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    result = measure(args.model, args.stories)
    table = format_table(
        ["conversations", "predictions", "TED model runs", "from cache", "1st half", "2nd half"]
        + ["TED ms (no cache)", "TED ms (cached)"],
        [
            [
                result["conversations"],
                result["predictions"],
                result["model_runs"],
                f"{result['from_cache']:.1%}",
                f"{result['from_cache_first_half']:.1%}",
                f"{result['from_cache_second_half']:.1%}",
                f"{result['ted_ms_without_cache']:.2f}",
                f"{result['ted_ms_from_cache']:.2f}",
            ]
        ],
    )
    write_results(args.out.stem, result, table, args.out.parent)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
