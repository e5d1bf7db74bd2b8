"""What operators ask from outside: ``offload status`` and ``offload health``."""
