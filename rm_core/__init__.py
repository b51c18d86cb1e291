"""rm_core: Reflective Masking (Zhang et al.) as a small library.

One implementation of each equation of the paper (see ``shared/paper/EQUATIONS.md``):
``rule`` (Eq. 1), ``history`` (Eq. 2), ``objective`` (Eq. 3-6), ``trajectory`` (Appendix C),
``samplers`` (the baselines' low-confidence remasking). Tasks and backbones plug in.
"""

__version__ = "0.1.0"
