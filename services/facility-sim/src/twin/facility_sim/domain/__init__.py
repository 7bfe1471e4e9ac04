"""Pure numpy model of a facility: workload → GPU activity → power, clocks, temperatures → racks."""
