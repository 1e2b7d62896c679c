"""actorsys: Kafka records to Parquet in batches, on Thespian actors."""

__version__ = "0.1.0"
