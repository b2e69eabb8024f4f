"""validation.reproduce.targets: a target file's hooks ('module:function') resolve to functions
of our packages, and a hook that names nothing there is a named error."""
import pytest

from simulator.policies import ConfigError
from validation.paths import TARGETS
from validation.reproduce.targets import load_file, resolve_callable, target_files


def test_every_hook_of_every_target_file_resolves():
    files = target_files()
    assert files and all(f.parent == TARGETS for f in files)
    for f in files:
        paper = load_file(f)
        hooks = [t.metric for t in paper.targets if ":" in t.metric]
        hooks += [paper.figures] if paper.figures else []
        for hook in hooks:
            assert callable(resolve_callable(hook)), hook


@pytest.mark.parametrize("spec, message", [
    ("validation.no_such_module:f", "no module 'validation.no_such_module'"),
    ("validation.reproduce.swap.metrics:no_such_function",
     "module 'validation.reproduce.swap.metrics' has no function 'no_such_function'"),
    ("validation.reproduce.swap.metrics:GIB", "has no function 'GIB'"),
    ("os.path:join", "must name a function as 'validation.module:function'"),
    ("validation.reproduce.swap.metrics", "must name a function"),
])
def test_a_hook_that_names_no_function_of_ours_is_a_named_error(spec, message):
    with pytest.raises(ConfigError) as err:
        resolve_callable(spec)
    assert message in str(err.value)


def test_a_targets_folder_without_target_files_is_an_error_not_an_empty_report(tmp_path):
    (tmp_path / "notes.txt").write_text("no targets here\n")
    with pytest.raises(ConfigError, match="holds no target files"):
        target_files(tmp_path)
