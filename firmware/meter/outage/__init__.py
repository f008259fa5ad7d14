# Outage: Last Gasp, supply monitoring, sealed alarms, hold-up budget.
