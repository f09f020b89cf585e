"""synthaug.integrations"""
