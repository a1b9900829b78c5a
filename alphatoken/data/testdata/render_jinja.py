"""render_jinja.py: the reference renderer of jinja_test.go.

Renders a chat template as transformers' apply_chat_template does (an ImmutableSandboxedEnvironment
with trim_blocks, lstrip_blocks and loopcontrols; raise_exception; tojson as json.dumps with
ensure_ascii=False), with Debian's python3-jinja2:

    /usr/bin/python3 render_jinja.py < {"template": str, "bos_token": str, "eos_token": str,
                                        "cases": [{"messages": [...], "add_generation_prompt": bool}]}
prints a JSON list with, per case, {"text": str} or {"error": str}.
"""
import json
import sys

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def main():
    req = json.load(sys.stdin)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    tmpl = env.from_string(req["template"])
    out = []
    for case in req["cases"]:
        try:
            text = tmpl.render(messages=case["messages"], add_generation_prompt=case["add_generation_prompt"],
                               bos_token=req["bos_token"], eos_token=req["eos_token"])
            out.append({"text": text})
        except Exception as e:  # the Go side must fail too
            out.append({"error": str(e)})
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
