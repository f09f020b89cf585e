"""synthaug.losses"""
