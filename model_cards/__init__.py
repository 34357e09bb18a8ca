"""Model card templates (Jinja Markdown) that `flallm push` renders: `stage1.md` and `stage2.md`.

A package only so that the templates install with flallm (package data `*.md`).
"""
