"""gradviz's Streamlit code, and the only package that imports streamlit: the pages (ui/pages/, one
module each) and the pieces they share (navigation, session, controls, runner, limits, init_view,
components, export, present, text, warmup)."""
