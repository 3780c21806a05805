"""Right to erasure (LGPD art. 18): who a data subject is, where the catalog says their data
lives, and the signed receipt of an erasure.

Nothing here touches a zone: ``storage/erasure/`` removes rows and objects, and `mlsec erase`
(``ops/erase.py``) runs the whole erasure as an operator.
"""
