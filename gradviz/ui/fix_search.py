"""The page's side of the fix search: "What each change did", filling in as the trials land, and
one Apply-fix button, only for a change that made this run learn (gradviz.diagnosis.fix_search)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from gradviz.config import format_value
from gradviz.diagnosis.evidence import Finding
from gradviz.diagnosis.fix_search import FixSearch, Trial, plan_search, run_search
from gradviz.result import RunResult
from gradviz.serving import cost
from gradviz.serving.settings import max_memory_mb
from gradviz.ui.runner import search_trial, stored_result
from gradviz.ui.session import apply_fix, blocked_note


def change_text(change: dict) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in change.items()) or "(as it is)"


def plan_for(result: RunResult, findings: list[Finding]) -> FixSearch | None:
    """The search this run gets, or None (nothing to fix, or nothing to try)."""
    return plan_search(result, findings, result.sharpness_at_init())


AUTO_FRACTION = 0.25  # a search starts by itself only for runs needing at most this share of the memory cap


def starts_by_itself(config) -> bool:
    """Small runs are searched at once; a large one's trials (up to 6 runs its size, on a shared
    server) wait for the learner to ask (stored trials are shown either way)."""
    return cost.training(config).mb <= AUTO_FRACTION * max_memory_mb()


def fix_search_panel(search: FixSearch) -> None:
    """Try each candidate on the learner's config (cached trials answer at once), drawing the table
    as rows land; then the verified fix's button on top, or why there is none. A control moved
    meanwhile reruns the page, which stops the search where it is (its trials so far stay cached).
    A large run's search waits for a click (starts_by_itself)."""
    st.markdown("#### What each change did")
    asked = st.session_state.get("fix_search_for") == search.config.cache_key()
    if not (asked or starts_by_itself(search.config) or _all_stored(search)):
        st.caption(f"No fix is offered until one is tried on this run: {search.budget_text()}.")
        st.button("Try the fixes on this run", key="start_fix_search", icon=":material/science:",
                  on_click=lambda: st.session_state.update(fix_search_for=search.config.cache_key()))
        return
    button, table, status = st.empty(), st.empty(), st.empty()
    status.caption(f"Trying {search.budget_text()} ...")
    _draw(table, search)
    for _ in run_search(search, lambda config: search_trial(config, f"Trying {change_text(_changed(search, config))}")):
        _draw(table, search)
    fix = search.verified_fix
    if fix:  # drawn before the verdict below: once "Tried:" shows, the button is there
        with button.container():
            tried = "this run" if search.whole_run else f"the first {search.epochs} epoch(s) of this run"
            blocked = blocked_note(fix)
            st.button(f"Apply fix: {change_text(fix)}", key="verified_fix", on_click=apply_fix, args=(fix,),
                      type="primary", icon=":material/verified:", disabled=bool(blocked),
                      help=blocked or f"Tried on {tried}: this change made it learn (see the table).")
    status.caption(_verdict_caption(search))
    st.session_state.get("stage_fixes", {}).pop(search.config.cache_key(), None)  # the stage may now show it


class _NotStored(Exception):
    """A trial that would have to be trained."""


def _stored_only(config):
    found = stored_result(config)
    if found is None:
        raise _NotStored
    return found


def replayed_from_store(search: FixSearch) -> FixSearch | None:
    """The search answered from cached or precomputed runs alone (no training), on a copy; None
    at the first trial the store does not have."""
    replay = FixSearch(search.config, search.candidates, search.epochs, search.baseline, list(search.trials))
    try:
        list(run_search(replay, _stored_only))
    except _NotStored:
        return None
    return replay


def _all_stored(search: FixSearch) -> bool:
    return replayed_from_store(search) is not None


def _changed(search: FixSearch, config) -> dict:
    return {k: v for k, v in config.to_dict().items() if k != "epochs" and getattr(search.config, k) != v}


def _verdict_caption(search: FixSearch) -> str:
    tried = f"Tried: {search.budget_text()}."
    if search.baseline is None:
        return f"{tried} The unchanged run could not be trained at that budget, so nothing was compared."
    if search.verified_fix:
        return (f"{tried} The button applies the change that made it learn best; a change learned when its run "
                "did not diverge, reached 30% validation accuracy with no critical finding, and beat the run as "
                "it is by 5 points or cleared its problems without losing accuracy (docs/diagnosis.md).")
    return f"{tried} None of them made this run learn, so no fix is offered: the table is the evidence."


def _draw(table, search: FixSearch) -> None:
    rows = [_row(t) for t in ([search.baseline] if search.baseline else []) + search.trials]
    if rows:
        table.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def _row(trial: Trial) -> dict:
    accuracy = None if trial.val_accuracy is None else round(100 * trial.val_accuracy, 1)
    return {"change": change_text(trial.change), "val accuracy %": accuracy,
            "diverged at step": trial.diverged_at_step,
            "the diagnosis says": ", ".join(k.replace("_", " ") for k in trial.kinds) or "no problem",
            "made it learn": "yes" if trial.learned else ("-" if not trial.change else "no")}
