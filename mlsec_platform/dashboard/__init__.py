"""The BI dashboard over Gold: a Streamlit page (``app.py``) whose every read goes through the
Access Broker with the viewer's token (``data.py``). `mlsec dashboard` serves it."""
