"""Removing one data subject from where their copies live: Delta tables (Raw, Cold, Silver,
Gold, features), the token vault, landing and quarantine objects, and the warehouse.

The catalog says where to look (``privacy/erasure/scope.py``); `mlsec erase`
(``ops/erase.py``) runs these with the credentials it draws as an operator.
"""
