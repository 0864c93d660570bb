"""Command-line parsing with one spelling per flag.

Every hmaf command spells its long options with underscores (``--l_max``,
``--label_map``, ``--no_progress``). Older releases also had hyphenated ones
(``--label-map``, ``--no-prepare``); :class:`ArgumentParser` still accepts the hyphenated
spelling of any option it defines, maps it to the underscore one and warns
(``FutureWarning``, shown by default) that it will go away.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any, Sequence


def _long_name(token: str) -> str:
    return token.partition("=")[0]


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose long options are spelled with underscores only.

    Defining a hyphenated long option is a programming error (ValueError); passing the
    hyphenated spelling of a defined option works with a deprecation warning.
    """

    def add_argument(self, *names: str, **kwargs: Any) -> argparse.Action:
        for name in names:
            if name.startswith("--") and "-" in name[2:]:
                raise ValueError(f"{name}: hmaf spells long options with underscores "
                                 f"({'--' + name[2:].replace('-', '_')})")
        return super().add_argument(*names, **kwargs)

    def respell(self, args: Sequence[str]) -> list[str]:
        """``args`` with each hyphenated spelling of a defined option replaced (and warned about)."""
        out: list[str] = []
        for i, token in enumerate(args):
            if token == "--":  # everything after is positional
                out.extend(args[i:])
                break
            name = _long_name(token)
            if name.startswith("--") and "-" in name[2:]:
                underscored = "--" + name[2:].replace("-", "_")
                if underscored in self._option_string_actions:
                    warnings.warn(f"{self.prog}: {name} is deprecated, spell it {underscored}",
                                  FutureWarning, stacklevel=3)
                    token = underscored + token[len(name):]
            out.append(token)
        return out

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(self.respell(args), namespace)
