"""MME's fixed vocabulary, said once: the 14 subtasks in the paper's order, their two groups, and
the answer instruction every MME question ends with (docs/mme.md)."""

from __future__ import annotations

PERCEPTION = (
    "existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR",
)
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
SUBTASKS = PERCEPTION + COGNITION
# Images per subtask in the benchmark (two questions each; 1187 images, 2374 questions; docs/mme.md §2):
# a run is a complete MME result only when every one of them was answered.
IMAGES = {
    "existence": 30, "count": 30, "position": 30, "color": 30, "posters": 147, "celebrity": 170, "scene": 200,
    "landmark": 200, "artwork": 200, "OCR": 20, "commonsense_reasoning": 70, "numerical_calculation": 20,
    "text_translation": 20, "code_reasoning": 20,
}
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
