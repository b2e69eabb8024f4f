"""The example inputs of `from_torch`: one tensor, or one per input of a forward that takes
several (forward(x, t), forward(input_ids, attention_mask)), checked and named."""
from __future__ import annotations

from .graph import WorkloadError


def _examples(torch, example_input) -> tuple:
    """The example inputs as a tuple, each checked: a tensor, its batch first (the first with
    a dimension after it), every one with the first's batch."""
    several = isinstance(example_input, (tuple, list))
    examples = tuple(example_input) if several else (example_input,)
    if not examples:
        raise WorkloadError("from_torch needs an example input tensor; got an empty "
                            f"{type(example_input).__name__}")
    for i, x in enumerate(examples):
        which = f"example input {i + 1} of {len(examples)}" if several else "the example input"
        if not isinstance(x, torch.Tensor):
            raise WorkloadError(f"from_torch: {which} is a {type(x).__name__}, not a tensor "
                                "with a batch dimension")
        if i == 0 and x.dim() < 2:
            raise WorkloadError(f"from_torch needs {which} with a batch dimension and one "
                                f"after it; got shape {tuple(x.shape)}")
        if i > 0 and (x.dim() < 1 or x.shape[0] != examples[0].shape[0]):
            raise WorkloadError(f"from_torch: {which} has shape {tuple(x.shape)}; its first "
                                f"dimension must be the batch, {examples[0].shape[0]} as in "
                                "the first")
    return examples


def _inputs_text(examples) -> str:
    if len(examples) == 1:
        return f"an input of shape {tuple(examples[0].shape)}"
    return "inputs of shapes " + ", ".join(str(tuple(x.shape)) for x in examples)


def required_inputs(module) -> list[str]:
    """Names of forward's positional parameters that have no default (what a call must
    give)."""
    import inspect
    parameters = list(inspect.signature(inspect.unwrap(type(module).forward)).parameters
                      .values())[1:]   # after self
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            and p.default is p.empty]


def input_names(module, count: int, name: str) -> tuple[str, ...]:
    """Names of the placeholders of forward's first `count` parameters: "input", then each
    parameter's own name (forward(x, t): "input", "t"). Raises WorkloadError where forward
    takes fewer positional inputs, or needs more than the one example given."""
    import inspect
    signature = inspect.signature(inspect.unwrap(type(module).forward))
    parameters = list(signature.parameters.values())[1:]   # after self
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY,
                                                     p.POSITIONAL_OR_KEYWORD)]
    required = [p.name for p in positional if p.default is p.empty]
    if count == 1 and len(required) > 1:
        raise WorkloadError(
            f"{name}: forward takes {len(required)} inputs ({', '.join(required)}) and one "
            "example was given; pass one example tensor for each, as a tuple (on the command "
            "line, input_shape gives one shape per input joined by '+', e.g. 3x64x64+scalar)")
    if count == 1:
        return ("input",)
    if any(p.kind == p.VAR_POSITIONAL for p in parameters[:count]):
        return ("input", *(f"input{i}" for i in range(2, count + 1)))
    if len(positional) < count:
        raise WorkloadError(f"{name}: forward{signature} takes {len(positional)} positional "
                            f"inputs, not the {count} examples given")
    return ("input", *(p.name for p in positional[1:count]))
