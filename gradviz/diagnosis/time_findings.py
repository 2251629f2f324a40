"""Through time: used, not just reached (no TensorFlow).

The rule: a recurrent network that learns, whose gradient reaching the first time step does not
look vanishing, may still ignore what it read first. At the end of training the validation images
are scored twice more (gradviz.training.train.halves_used): with the first half of the time steps
blanked (the image's top 14 rows), and with the second half blanked. When blanking the first half
costs less than IGNORED points of accuracy while blanking the second costs more than USED points,
the early half is ignored: the network answers from the last steps alone.
"""

from __future__ import annotations

from gradviz.diagnosis.evidence import Evidence, Finding, pct
from gradviz.result import RunResult

IGNORED = 0.02  # blanking the first half changes accuracy by less than this: it is not used
USED = 0.10  # while blanking the second half costs more than this: the network works, from the end


def early_steps_ignored(r: RunResult, e: Evidence) -> Finding | None:
    if not e.recurrent or len(r.halves) != 2 or not e.learning:
        return None
    first, second = (float(v) for v in r.halves)
    full = e.val_accuracy
    if full - first >= IGNORED or full - second <= USED:
        return None
    fix = {"step_pixels": 28} if r.config.architecture == "rnn" and r.config.step_pixels != 28 else {}
    return Finding(
        "early_steps_ignored", "warning",
        f"The trained network ignores what it reads first: blanking the first half of each image (its top 14 "
        f"rows, read in the first half of the {r.config.time_steps} time steps) leaves validation accuracy at "
        f"{pct(first)} ({pct(full)} with it), while blanking the second half drops it to {pct(second)}. A "
        f"gradient reached the early steps ({e.ratio_text('of')}), but the network did not learn to carry what "
        "they read to the end."
        + (" Reading the image in 28 rows makes the sequence 28 steps long." if fix else ""),
        {"val_accuracy": full, "first_half_blanked": first, "second_half_blanked": second}, fix)
