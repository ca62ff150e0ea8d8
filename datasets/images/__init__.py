"""Image datasets (family ``image``): scikit-learn's digits and its two bundled photos."""
