"""``make app`` (``streamlit run app/streamlit_app.py``): the page lives in helpers.analysis.app."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's helpers

from helpers.analysis.app import main

main()
