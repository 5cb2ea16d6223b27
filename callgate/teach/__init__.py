"""Teaching tools: why a filter answers a call the way it does, and what its code looks like.

- :mod:`callgate.teach.explain` works out one call's verdict twice, on the policy
  model (the reference semantics, rule by rule) and by running the compiled BPF,
  so a student sees the reasoning and the executed path side by side;
- :mod:`callgate.teach.explain_text` prints that explanation (text or JSON);
- :mod:`callgate.teach.graph` draws a program's control-flow graph (DOT, SVG).
"""
