"""`twinctl completion zsh` in a real zsh (`zsh -f`: no user configuration): the script is sourced as the README
says (`source <(twinctl completion zsh)`), then the completion zsh registered for `twinctl` (`$_comps[twinctl]`,
bashcompinit's `_bash_complete -F _twinctl`) is called with `words`/`CURRENT`/`PREFIX` set as the completion
system sets them for `twinctl WORDS<TAB>`. `compadd` only works inside a completion widget, so it is replaced by
a function that prints the words it is given that match the prefix (what compadd's default matching offers).
The bash script has its own real-bash test in test_twinctl_cli.py."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from twinctl.__main__ import add_json_everywhere, build_parser
from twinctl.completion import command_tree

pytestmark = pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (apt-get install zsh)")

# compadd's options that take an argument (zshcompwid(1), "compadd"); the rest are flags
_COMPADD = r"""
compadd() {
  local a arrays=0 skip=0 opts=1
  local -a out
  for a in "$@"; do
    if (( skip )); then skip=0; continue; fi
    if (( opts )); then
      case $a in
        -) opts=0; continue ;;
        -a) arrays=1; continue ;;
        -[PSpsiIWJVXxrRMFOADE]) skip=1; continue ;;
        -*) continue ;;
      esac
    fi
    if (( arrays )); then out+=( "${(@P)a}" ); else out+=( "$a" ); fi
  done
  for a in "${out[@]}"; do [[ -n $a && $a == ${PREFIX}* ]] && print -r -- "$a"; done
  return 0
}
compset() { return 1 }
complete_line() {  # twinctl WORDS...: the last word is the one being completed
  local -a words; words=(twinctl "$@")
  local CURRENT=$#words PREFIX=$words[-1]
  print -r -- "== $*"
  ${=_comps[twinctl]}
}
"""


def _zsh(tmp_path, lines: list[tuple[str, ...]], *, compinit_first: bool = True) -> dict[tuple[str, ...], list[str]]:
    """{words: sorted completions} for each `twinctl WORDS<TAB>`, from one zsh run."""
    source = f'source <("{sys.executable}" -m twinctl completion zsh)'
    setup = "autoload -U compinit && compinit -u -d \"$HOME/.zcompdump\"\n" if compinit_first else ""
    calls = "\n".join("complete_line " + " ".join(f"'{w}'" for w in words) for words in lines)
    script = f"{setup}{source}\n{_COMPADD}\n{calls}\nprint -r -- '== end'\n"
    out = subprocess.run(["zsh", "-f", "-c", script], capture_output=True, text=True, timeout=60,
                         env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.rstrip().endswith("== end"), out.stdout + out.stderr
    got: dict[tuple[str, ...], list[str]] = {}
    blocks = out.stdout.split("== ")[1:-1]
    assert len(blocks) == len(lines), out.stdout
    for words, block in zip(lines, blocks, strict=True):
        head, *rest = block.split("\n")
        assert head == " ".join(words), (head, words)
        got[words] = sorted(w for w in rest if w)
    return got


def _tree() -> dict[str, tuple[list[str], list[str]]]:
    p = build_parser()
    add_json_everywhere(p)  # as twinctl's main does
    return command_tree(p)


def test_zsh_completes_commands_options_and_choices(tmp_path) -> None:
    tree = _tree()
    got = _zsh(tmp_path, [("po",), ("",), ("power", ""), ("power", "--target", "127.0.0.1:1", "hi"),
                          ("cooling", "sweep", "--dry"), ("scenario", "run", "cdu"), ("fabric", "sweep", "--pl"),
                          ("power", "state", "--js"), ("nothing-like-this",)])
    assert got[("po",)] == ["power"]
    assert got[("",)] == sorted(tree["twinctl"][0] + tree["twinctl"][1])
    assert got[("power", "")] == sorted(tree["twinctl power"][0] + tree["twinctl power"][1])
    assert "history" in got[("power", "")] and "--target" in got[("power", "")]
    assert got[("power", "--target", "127.0.0.1:1", "hi")] == ["history"]  # an option's value is skipped
    assert got[("cooling", "sweep", "--dry")] == ["--dry-bulb-c"]
    assert got[("scenario", "run", "cdu")] == ["cdu-failure"]
    assert got[("fabric", "sweep", "--pl")] == ["--plot"]
    assert got[("power", "state", "--js")] == ["--json"]
    assert got[("nothing-like-this",)] == []


def test_the_zsh_script_sets_up_the_completion_system_itself_when_not_done(tmp_path) -> None:
    """`zsh -f` without compinit: the script loads compinit and bashcompinit on its own."""
    got = _zsh(tmp_path, [("sc",), ("scenario", "")], compinit_first=False)
    assert got[("sc",)] == ["scenario"]
    assert got[("scenario", "")] == sorted(_tree()["twinctl scenario"][0] + _tree()["twinctl scenario"][1])
