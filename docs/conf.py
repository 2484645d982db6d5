"""Sphinx configuration of the sknngp documentation (``make docs``).

Sphinx + numpydoc because the package's docstrings are numpydoc reST (roles,
``.. math::``, references), the convention of scikit-learn, which this package
extends; sphinx-gallery renders ``examples/`` as a gallery without running
them (they train networks and take minutes), so the build is fast and needs
no network. Built with warnings as errors (``-W``).
"""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import sknngp  # noqa: E402

project = "sknngp"
author = "the sknngp developers"
copyright = "the sknngp developers, BSD-3-Clause"
version = release = sknngp.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.md5"]
root_doc = "index"

autosummary_generate = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# The docstrings cite the paper with numbered references in several classes.
numpydoc_citation_re = r"[\w-]+"

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Never execute the examples during the build: they train networks and
    # compute kernels for minutes. Their docstrings state measured results.
    "plot_gallery": False,
    "download_all_examples": False,
    "within_subsection_order": "FileNameSortKey",
    "write_computation_times": False,
}


def _skip_member(app, what, name, obj, skip, options):
    """Document the methods sknngp defines (also those its classes inherit from
    private sknngp bases), not the generic ones of scikit-learn's base classes
    (``get_params``, ``score``, ``set_fit_request``...): those are documented by
    scikit-learn, and their docstrings link into its documentation."""
    module = getattr(obj, "__module__", None) or ""
    if module.startswith("sklearn") or name == "get_metadata_routing" or (
            name.startswith("set_") and name.endswith("_request")):
        return True
    return skip


def _quote_attribute_names(app, what, name, obj, options, lines):
    """``(n_features_in_,)`` in a numpydoc type is read as a reST link target;
    quote it as scikit-learn's docstrings do (```n_features_in_```)."""
    for i, line in enumerate(lines):
        lines[i] = line.replace("(n_features_in_,)", "(`n_features_in_`,)")


def setup(app):
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("autodoc-process-docstring", _quote_attribute_names)


html_theme = "pydata_sphinx_theme"
html_title = "sknngp"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path = []
