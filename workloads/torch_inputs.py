"""The example inputs of `from_torch`: one tensor, or one per input of a forward that takes
several (forward(x, t), forward(input_ids, attention_mask)), checked and named; and the
graph's input ops made for them (InputLowering): values, or token ids below the size of the
embedding table that reads them."""
from __future__ import annotations

from .graph import WorkloadError
from .torch_import_idioms import _ID_PASSTHROUGH
from .torch_state import LoweringState


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


class InputLowering(LoweringState):
    """The input ops of the fx graph's placeholders, for the lowering
    (torch_import._Lowering)."""

    def _input(self, node, index: int):
        """The graph's input `index`; integer token ids where the example is, below the table
        size of the embedding that reads them."""
        if index > 0:
            return self._further_input(node, self.examples[index])
        if not self.example_is_integer:
            return self.b.input()
        self.input_name = self.b.input(tokens=self._table_size(node))
        return self.input_name

    def _further_input(self, node, example) -> str:
        """A second (third, ...) input, named by its parameter: values, or token ids read by
        an embedding."""
        shape = tuple(int(d) for d in example.shape[1:])
        if example.is_floating_point():
            return self.b.input(node.target, shape=shape, dtype_bytes=example.element_size())
        return self.b.input(node.target, tokens=self._table_size(node), shape=shape)

    def _table_size(self, node) -> int:
        """Rows of the largest embedding that reads integer input `node`."""
        readers, seen = list(node.users), set()
        while readers:   # through views, casts and moves of the ids that keep their shape
            u = readers.pop()
            seen.add(u)
            if u.op == "call_method" and u.target in _ID_PASSTHROUGH and \
                    self.traced_shape(u) == self.traced_shape(node):
                readers.extend(set(u.users) - seen)
        embedding = self.torch.nn.functional.embedding
        tables = [self.modules[u.target].num_embeddings for u in seen
                  if u.op == "call_module" and hasattr(self.modules[u.target], "num_embeddings")]
        tables += [int(w.meta["tensor_meta"].shape[0]) for u in seen   # F.embedding(ids, w)
                   if u.op == "call_function" and u.target is embedding
                   for w in u.args[1:2] if "tensor_meta" in getattr(w, "meta", {})]
        if not tables:
            raise self.unsupported("is an integer tensor that no nn.Embedding reads; only "
                                   "token ids read by an embedding may be integers")
        return max(tables)
