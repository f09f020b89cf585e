"""synthaug.transforms"""
