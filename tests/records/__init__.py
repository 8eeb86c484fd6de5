"""Outputs of rhlens itself, recorded on one TransformerLens version and compared on another
(stories260K's scores and greedy predictions on TransformerLens 3, checked on 4). Unlike
:mod:`tests.references`, these are no independent implementations: they run rhlens."""
