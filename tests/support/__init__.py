"""Helpers the tests share: paths and tiny data, AppTest readers, constructed results, gate
threads, and a real `streamlit run` server on loopback."""
