"""synthaug.data"""
