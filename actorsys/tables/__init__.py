"""Delta Lake output tables: the physical layout of their data files
(:mod:`actorsys.tables.layout`) and the committer's view of one table
(:mod:`actorsys.tables.delta`).

Workers write data files into a table directory; one writer per table
publishes many of them per atomic Delta commit, together with the Kafka
offsets they cover (Delta ``txn`` actions), so a reader sees a batch's rows
either completely or not at all, and a restarted committer knows exactly
which offsets are already in the table.
"""
