"""Reporting: tables, claims, figures and README blocks made from result files only (no training).

``frames`` finds a profile's results and flattens them into one table; ``tables`` and ``claims`` turn
that table into markdown and pandas tables, ``bench_tables`` the benchmark results into markdown;
``verdicts`` computes the paired tests and floors, ``verdict_text`` writes them out as markdown;
``figures`` draws them; ``readme`` writes the README's generated blocks.
"""
