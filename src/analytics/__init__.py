"""The analytics consumer: deliveries and taps turned into read rates, forwards and rollups."""
