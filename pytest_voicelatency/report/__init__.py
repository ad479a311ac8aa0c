"""Writers: the terminal table, the Markdown PR comment and JUnit properties. Each only reads the
results model; none reaches into another.

May import: ``results``, ``gate``, ``stats``, ``spans``, ``errors``.
"""
