"""gradviz's Streamlit code, and the only package that imports streamlit: one module per page
(explorer, compare, seed, guide, through_time), and the pieces they share (session, controls,
runner, components, export, text, navigation)."""
