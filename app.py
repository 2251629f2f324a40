"""gradviz: see vanishing and exploding gradients happen, and get fixed, on real MNIST (streamlit run app.py)."""

from gradviz.ui.navigation import run_app

run_app()
