"""The strategy service's pure core: the decision over dates and its event mapping."""
