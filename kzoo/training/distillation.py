"""Knowledge distillation (`train.distill_from`, `train.distill`).

A student learns from a trained teacher run's temperature-softened outputs and
from the true labels (Hinton et al., 2015):

    loss = alpha * task_loss + (1 - alpha) * T^2 * KL(softmax(t / T) || softmax(s / T))

with `t`, `s` the teacher's and the student's logits and `T` the temperature (the
`T^2` keeps the soft term's gradients on the scale of the hard one's). Where the
task weights positions (a seq2seq run's padding), the KL term is averaged with the
same weights.

Why not `keras.distillation.Distiller`: it wraps the student in a new model and
averages its distillation loss over every position, padding included. kzoo keeps
the task model itself (so checkpoints, monitors, `model.keras` and every export
are the student's, as in any run) and only replaces its `compute_loss`
(`attach`), the hook Keras documents for custom losses; the teacher is frozen and
never saved. Its logits reach TensorBoard as `task_loss` and `distillation_loss`;
`loss` is the weighted sum that trains, and `val_loss` the task's alone, so a
distilled run's validation figures compare with any other run's.
"""

import keras
from keras import ops

from kzoo.training.config import Field, positive

DISTILL_SCHEMA = {
    "temperature": Field((float,), 2.0, positive, doc="T: softens both models' outputs"),
    "alpha": Field(
        (float,),
        0.5,
        lambda v: None if 0 <= v <= 1 else "must be in [0, 1]",
        doc="weight of the true labels' loss; 1 - alpha goes to the teacher's outputs",
    ),
}
# The epoch-log key of the student's task loss (the perplexity of a distilled LM).
TASK_LOSS = "task_loss"


def soft_loss(teacher_logits, student_logits, temperature, sample_weight=None):
    """`T^2 * KL(softmax(t / T) || softmax(s / T))` over the last axis, averaged
    over the other positions (weighted by `sample_weight` where given).

    Example:
    >>> import numpy as np
    >>> logits = np.array([[1.0, 2.0, 0.5]], "float32")
    >>> float(soft_loss(logits, logits, 2.0))
    0.0
    >>> float(soft_loss(logits, logits[:, ::-1], 2.0)) > 0
    True
    """
    teacher = ops.log_softmax(ops.cast(teacher_logits, "float32") / temperature, axis=-1)
    student = ops.log_softmax(ops.cast(student_logits, "float32") / temperature, axis=-1)
    kl = ops.sum(ops.exp(teacher) * (teacher - student), axis=-1) * temperature**2
    if sample_weight is None:
        return ops.mean(kl)
    weight = ops.cast(ops.broadcast_to(sample_weight, ops.shape(kl)), "float32")
    return ops.sum(kl * weight) / ops.maximum(ops.sum(weight), 1e-9)


def attach(student, teacher, temperature, alpha):
    """Makes `student` (compiled or not) train on `teacher`'s outputs too.

    Replaces `student.compute_loss` by the mixture above (the task loss alone when
    Keras evaluates) and adds the `task_loss` and `distillation_loss` metrics.

    Args:
        student: The task model being trained.
        teacher: A model taking the same inputs and giving logits of the same
            structure and shapes; frozen here.
        temperature: `T` (> 0).
        alpha: The weight of the task loss, in [0, 1].

    Example:
    >>> import numpy as np
    >>> def tiny(seed):
    ...     keras.utils.set_random_seed(seed)
    ...     return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> student, teacher = tiny(0), tiny(1)
    >>> attach(student, teacher, temperature=2.0, alpha=0.5)
    >>> student.compile(optimizer="sgd",
    ...     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> logs = student.fit(np.ones((8, 4)), np.zeros(8), verbose=0).history
    >>> sorted(logs)
    ['distillation_loss', 'loss', 'task_loss']
    """
    teacher.trainable = False
    task_loss_of = student.compute_loss
    task_metric = keras.metrics.Mean(name=TASK_LOSS)
    soft_metric = keras.metrics.Mean(name="distillation_loss")

    def compute_loss(x=None, y=None, y_pred=None, sample_weight=None, training=True):
        task_loss = task_loss_of(x, y, y_pred, sample_weight, training)
        teacher_logits = teacher(x, training=False)
        soft = [
            soft_loss(t, s, temperature, _weight_for(sample_weight, name))
            for name, t, s in _pairs(teacher_logits, y_pred)
        ]
        soft = ops.mean(ops.stack(soft))
        task_metric.update_state(task_loss)
        soft_metric.update_state(soft)
        if not training:
            return task_loss
        return alpha * task_loss + (1.0 - alpha) * soft

    student.compute_loss = compute_loss
    # Tracked as the model's own metrics: reset every epoch, logged (val_ too).
    student.distillation_metrics = [task_metric, soft_metric]


def _pairs(teacher_outputs, student_outputs):
    """`[(name, teacher logits, student logits)]`: one pair per output (a QA
    model's start and end logits), name None for a single output."""
    if isinstance(student_outputs, dict):
        return [(k, teacher_outputs[k], v) for k, v in student_outputs.items()]
    return [(None, teacher_outputs, student_outputs)]


def _weight_for(sample_weight, name):
    if isinstance(sample_weight, dict):
        return sample_weight.get(name)
    return sample_weight


def check_teacher(config, teacher):
    """Raises ValueError unless the run `teacher` (the `train.distill_from`
    `RunDirectory`) holds a model of the student's `model.task`."""
    if not teacher.has_model():
        raise ValueError(
            f"train.distill_from: {teacher.path} holds no trained model ({teacher.MODEL}); "
            "train (or `kzoo import`) the teacher first"
        )
    task = config["model"].get("task")
    taught = teacher.config()["model"].get("task")
    if task != taught:
        raise ValueError(
            f"train.distill_from: {teacher.path} is a model.task {taught!r} run; the "
            f"student's model.task is {task!r}"
        )


def load_teacher(config, teacher, tokenizer):
    """The model of the run `teacher` (`check_teacher`), whose vocabulary must be
    the student's `tokenizer`'s.

    Raises:
        ValueError: `check_teacher`'s problems, or another vocabulary.
    """
    check_teacher(config, teacher)
    if teacher.tokenizer().get_vocabulary() != tokenizer.get_vocabulary():
        raise ValueError(
            f"train.distill_from: {teacher.path}'s tokenizer differs from the student's "
            "(train.init_from's); the two must share a vocabulary"
        )
    return teacher.load_model()


def check_outputs(student, teacher, path):
    """Raises ValueError unless `teacher` gives the same outputs as `student` (the
    number of labels or the vocabulary size)."""

    def widths(model):
        return [tuple(output.shape[-1:]) for output in model.outputs]

    if widths(student) != widths(teacher):
        raise ValueError(
            f"train.distill_from: {path}'s model outputs {widths(teacher)} logits, the "
            f"student {widths(student)}; distil between models of the same labels or "
            "vocabulary"
        )
