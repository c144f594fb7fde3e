"""Training: the network (``model``), the unit of work (``members``), the engines that
train members (``engines``), what they produce (``outcomes``) and its figure."""
