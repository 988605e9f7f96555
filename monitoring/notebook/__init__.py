"""What the tutorial notebooks call: the :class:`~monitoring.notebook.tutorial.Tutorial` session, the control
panel widgets and the matplotlib plots drawn from polled custom status."""
