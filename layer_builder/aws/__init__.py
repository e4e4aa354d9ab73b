"""AWS: the one module that talks to boto3 (`clients`) and facts about AWS (`facts`)."""
