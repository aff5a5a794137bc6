#!/usr/bin/env python3
"""Extracts CogView3's prompt-expansion template TEXT from the official prompt_optimize.py.

Reads the script with Python's ast (nothing of it is imported or run) and writes:
  Nodes/Resources/cogview3-prompt-template.json  the template as data, with its provenance
  Nodes/PromptExpandOfficialTemplate.swift       the same text compiled into the binary

Usage (from the repository root):
  python3 Tests/tools/llm_extract_template.py /work/cogview3/prompt_optimize.py [--commit d450a74]

The few-shot user turns and the final user turn must all follow one wording with the prompt in
place of `{prompt}`; the script checks that and fails otherwise. Nothing is changed in the text.
"""
import argparse
import ast
import hashlib
import json
import os
import sys

PLACEHOLDER = "{prompt}"


def fail(msg):
    sys.exit(f"llm_extract_template: {msg}")


def find_function(tree, name):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    fail(f"no function {name}() in the script")


def const_str(node, what):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return None
    fail(f"{what} is not a string literal")


def joined(node, names):
    """An f-string as text: each {name} becomes names[name]; a lone {x} of another variable fails."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if not isinstance(node, ast.JoinedStr):
        fail("expected a string or f-string")
    out = ""
    for part in node.values:
        if isinstance(part, ast.Constant):
            out += part.value
        elif isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name) and part.value.id in names:
            if part.conversion != -1 or part.format_spec is not None:
                fail("a formatted value with a conversion or format spec")
            out += names[part.value.id]
        else:
            fail("an f-string part that is not a known variable")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("script", help="path to THUDM/CogView3 prompt_optimize.py")
    ap.add_argument("--commit", default="d450a74", help="commit of the CogView3 checkout the script comes from")
    ap.add_argument("--repo-root", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    args = ap.parse_args()

    source = open(args.script, "rb").read()
    tree = ast.parse(source.decode("utf-8"))
    fn = find_function(tree, "upsample_prompt")

    system = None
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "system_instruction" for t in node.targets):
            system = const_str(node.value, "system_instruction")
    if system is None:
        fail("no system_instruction assignment")

    call = None
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "create":
            call = node
    if call is None:
        fail("no chat.completions.create(...) call")
    kwargs = {k.arg: k.value for k in call.keywords}

    messages = []
    for item in kwargs["messages"].elts:
        d = {k.value: v for k, v in zip(item.keys, item.values)}
        role = const_str(d["role"], "role")
        content = joined(d["content"], {"system_instruction": system, "text": PLACEHOLDER})
        messages.append((role, content))

    if messages[0] != ("system", system):
        fail("the first message is not the system instruction")
    final_role, user_template = messages[-1]
    if final_role != "user" or user_template.count(PLACEHOLDER) != 1:
        fail("the final message is not a user turn with the prompt in it once")
    head, tail = user_template.split(PLACEHOLDER)
    examples = []
    pairs = messages[1:-1]
    if len(pairs) % 2:
        fail("the few-shot turns do not pair up")
    for i in range(0, len(pairs), 2):
        (r1, u), (r2, a) = pairs[i], pairs[i + 1]
        if (r1, r2) != ("user", "assistant"):
            fail(f"few-shot pair {i // 2} is not user then assistant")
        if not (u.startswith(head) and u.endswith(tail)):
            fail(f"few-shot user turn {i // 2} does not follow the final turn's wording")
        examples.append({"prompt": u[len(head):len(u) - len(tail)], "user": u, "assistant": a})

    sampling = {}
    for name in ("temperature", "top_p", "max_tokens", "stream"):
        sampling[name] = ast.literal_eval(kwargs[name])

    template = {
        "provenance": (
            "Extracted by Tests/tools/llm_extract_template.py with Python's ast from THUDM/CogView3 "
            f"prompt_optimize.py (commit {args.commit}, file sha256 {hashlib.sha256(source).hexdigest()}), "
            "function upsample_prompt. Text unchanged: the system instruction keeps its leading newline, "
            "indentation and trailing spaces; the few-shot turns are verbatim; {prompt} stands for the f-string's "
            "{text} (the user's prompt after strip()). Sampling values are the call's keyword arguments."
        ),
        "system": system,
        "examples": [{"user": e["user"], "assistant": e["assistant"]} for e in examples],
        "user_template": user_template,
        "sampling": sampling,
    }
    root = os.path.abspath(args.repo_root)
    json_path = os.path.join(root, "Nodes", "Resources", "cogview3-prompt-template.json")
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(template, f, ensure_ascii=False, indent=2, sort_keys=True)
        f.write("\n")

    def swift_literal(text, indent):
        """A Swift array-of-pieces expression for `text`, pieces short enough to read."""
        pieces, cur = [], ""
        for ch in text:
            cur += ch
            if ch == "\n" or (ch == " " and len(cur) >= 60) or len(cur) >= 100:
                pieces.append(cur)
                cur = ""
        if cur or not pieces:
            pieces.append(cur)

        def esc(s):
            out = ""
            for ch in s:
                if ch == "\\":
                    out += "\\\\"
                elif ch == '"':
                    out += '\\"'
                elif ch == "\n":
                    out += "\\n"
                elif ch == "\t":
                    out += "\\t"
                elif ord(ch) < 0x20 or ord(ch) == 0x7F:
                    out += "\\u{%x}" % ord(ch)
                else:
                    out += ch
            return out

        pad = " " * indent
        body = ",\n".join(f'{pad}  "{esc(p)}"' for p in pieces)
        return f"[\n{body},\n{pad}].joined()"

    lines = [
        "// Generated by Tests/tools/llm_extract_template.py from THUDM/CogView3 prompt_optimize.py",
        f"// (commit {args.commit}); do not edit. The same text is in Nodes/Resources/cogview3-prompt-template.json,",
        "// and PromptExpandTemplateTests checks that the two agree.",
        "",
        "extension PromptTemplate {",
        "  /// CogView3's official expansion template (system instruction, four few-shot pairs, final user turn).",
        "  public static let official = PromptTemplate(",
        f"    system: {swift_literal(system, 4)},",
        "    examples: [",
    ]
    for e in examples:
        lines.append("      PromptTemplate.Example(")
        lines.append(f"        user: {swift_literal(e['user'], 8)},")
        lines.append(f"        assistant: {swift_literal(e['assistant'], 8)}),")
    lines += [
        "    ],",
        f"    userTemplate: {swift_literal(user_template, 4)})",
        "}",
        "",
    ]
    swift_path = os.path.join(root, "Nodes", "PromptExpandOfficialTemplate.swift")
    with open(swift_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print(f"wrote {json_path} and {swift_path}: {len(examples)} examples, sampling {sampling}")


if __name__ == "__main__":
    main()
