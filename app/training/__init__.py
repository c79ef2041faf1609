"""DPO training: the worker (`prefstudio train`, optional extra ``[train]``) and the runs it reports."""
