"""MME's fixed vocabulary, said once: the 14 subtasks in the paper's order, their two groups, and
the answer instruction every MME question ends with (docs/mme.md)."""

from __future__ import annotations

PERCEPTION = (
    "existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR",
)
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
SUBTASKS = PERCEPTION + COGNITION
GROUPS = {"Perception": PERCEPTION, "Cognition": COGNITION}
# What every MME question ends with (the release's questions_answers_YN files, lmms-lab/MME).
ANSWER_SUFFIX = " Please answer yes or no."


def group_of(subtask: str) -> str:
    """`Perception` or `Cognition`."""
    return "Perception" if subtask in PERCEPTION else "Cognition"


def strip_answer_suffix(question: str) -> str:
    """The question without MME's answer instruction (what a text encoder or a protocol that
    adds its own instruction should see)."""
    return question[: -len(ANSWER_SUFFIX)] if question.endswith(ANSWER_SUFFIX) else question
