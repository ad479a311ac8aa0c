"""Repository-level pytest configuration: nothing here is needed by users of the plugin.

The plugin itself is loaded through its ``pytest11`` entry point once the package is installed
(``pip install -e .``), exactly as users get it.
"""
