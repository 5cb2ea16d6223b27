"""Labs that check themselves: ``callgate lab list | show N | check N [FILE]``.

Each lab (:class:`~callgate.teach.labs.base.Lab`) has a goal, hints, a file to hand in - a
policy, a filter in assembly, a broker, a lockdown function - and a checker that runs real
guests (shipped in ``guests/``) or the real kernel against it, and says what failed and
why. Reference solutions, starters and the files a lab hands out are in ``files/``.
docs/labs.md describes them; :mod:`.catalog` lists them.
"""
